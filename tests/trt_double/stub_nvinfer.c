/* Stand-ins for the TensorRT libraries, so the real Python bindings (tensorrt-bindings, tensorrt-cu12-bindings)
 * import on a machine without TensorRT or a GPU. Each returns null or 0: nothing may be called through them,
 * only the names have to resolve (Python loads extension modules with RTLD_NOW). Compiled once per library:
 *   -DEB_NVINFER         libnvinfer.so.N
 *   -DEB_NVINFER_PLUGIN  libnvinfer_plugin.so.N
 *   -DEB_NVONNXPARSER    libnvonnxparser.so.N
 *   -DEB_NVPARSERS       libnvparsers.so.8 (8.x only: the UFF and Caffe parsers the 8.6.1 module links to)
 * The symbol lists are what the modules leave undefined (`nm -D --undefined-only tensorrt.so`).
 */
#include <stddef.h>

#ifdef EB_NVINFER
void *createInferBuilder_INTERNAL(void *logger, int version) { return NULL; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return NULL; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return NULL; }
void *getBuilderPluginRegistry(int capability) { return NULL; }
void *getPluginRegistry(void) { return NULL; }
int getInferLibVersion(void) { return 0; }
#endif

#ifdef EB_NVINFER_PLUGIN
int initLibNvInferPlugins(void *logger, const char *ns) { return 0; }
#endif

#ifdef EB_NVONNXPARSER
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return NULL; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return NULL; }
int getNvOnnxParserVersion(void) { return 0; }
#endif

#ifdef EB_NVPARSERS
/* nvuffparser::createUffParser(), nvuffparser::FieldMap::FieldMap(char const*, void const*, FieldType, int),
 * nvcaffeparser1::createCaffeParser(), nvcaffeparser1::shutdownProtobufLibrary(), by their mangled names */
void *_ZN11nvuffparser15createUffParserEv(void) { return NULL; }
void _ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi(void *self, const char *name, const void *data, int type,
                                                       int length) {}
void *_ZN14nvcaffeparser117createCaffeParserEv(void) { return NULL; }
void _ZN14nvcaffeparser123shutdownProtobufLibraryEv(void) {}
#endif
